"""The web dashboard: a read-only HTTP face on the same servicers the gRPC API uses.

context.py adapts an HTTP request to the servicers' context (identity, errors), routes.py
holds the JSON endpoints, live.py the server-sent-event streams, server.py serves them with
the built pages in static/ (built from web/ at the top of the repository: see web/API.md).
"""

ADDRESS_FILE = "web.addr"  # in the state dir: the dashboard's URL, while it serves
