"""`nahfeld demo` and the reference app client (`nahfeld app-sim`): the whole loop on one
machine, no radio and no set-up."""
