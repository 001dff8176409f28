"""Catalog: sellers' products with variants, images as URLs, publish/unpublish, buyer search."""
