"""Where an edit enters: the y-websocket consumer, live rooms, group commit and relay."""
