"""The in-store hardware as validated files: layouts, beacon profiles, broker and gateway configs.

``bundle`` loads a whole firmware-config directory and reports every problem in
one run (an installer should not fix files one error at a time); ``render``
turns it into each gateway's ``gateway.toml``, ``acl`` into the broker's ACL,
and ``schemas`` gives editors the models' rules as JSON Schema.
"""
