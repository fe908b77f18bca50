"""The y-websocket wire protocol and the server's CRDT replica: pure Python over pycrdt."""
