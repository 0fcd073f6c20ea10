"""Sends an NDJSON workload to a syslog daemon over TCP, one RFC 5424 message per event
with the JSON object as the message, as fast as the socket takes it.

    python3 syslog_send.py HOST PORT WORKLOAD.ndjson
"""
import socket
import sys

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
frames = bytearray()
with open(path, "rb") as f:
    for line in f:
        frames += b"<134>1 2026-01-01T00:00:00Z bench evident - - - " + line.rstrip(b"\n") + b"\n"
with socket.create_connection((host, port)) as s:
    s.sendall(frames)
