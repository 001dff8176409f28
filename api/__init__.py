"""The composition root: the REST API, the application factory (`api.app.create_app`), the
command line (`python -m api`), and the commerce domains. Nothing imports this package."""
