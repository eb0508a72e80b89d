"""The conversational gateway: inbound pipeline, commands, sessions, outbound formatting."""
