"""marshmallow schemas: the single source for validation and for the OpenAPI document."""
