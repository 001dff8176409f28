"""Orders: the state machine, history, transitions with their money and stock effects."""
