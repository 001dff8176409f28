"""Live video: WHIP publishing and WHEP viewing, an aiortc relay from one publisher to many
viewers. (Streaming issue.)"""
