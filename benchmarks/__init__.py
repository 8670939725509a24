"""Side-by-side performance benchmark of the service against a bare Flask app.

Run it with ``python -m benchmarks.side_by_side`` (``make bench``); ``--help`` lists the options.
"""
