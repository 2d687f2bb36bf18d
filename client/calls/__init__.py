"""Calls: the m.call.* state machine and events, the aiortc engine."""
