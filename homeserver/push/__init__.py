"""Push rules (Client-Server API, "Push Notifications" module): the server-default
rule set, a user's changes to it, and evaluating rules for an event. Pure code."""
