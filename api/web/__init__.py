"""The web pages the server serves itself (plain HTML/JS/CSS, no build step): sign-in, shows,
the live show page, orders, the operations dashboard and the seller's studio. Every action in
them goes through the public REST API and the websocket, like any other client."""
