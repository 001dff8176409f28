"""Load tests (locust) and benchmark tools. They target 127.0.0.1 only, are bounded in count and
time, and stop by themselves."""
