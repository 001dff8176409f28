"""The composition root: the REST API, the application factory (`api.app.create_app`), the
command line (`python -m api`), and the commerce domains. No server package imports this one
(only the tools outside the server, loadtests/ and testkit/, do)."""
