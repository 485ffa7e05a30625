"""One router per resource; a handler validates, calls one service function, shapes the answer."""
