"""The model list and model object, in OpenAI's format."""

from marshmallow import Schema, fields


class ModelSchema(Schema):
    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["model"]})
    created = fields.Integer(required=True)
    owned_by = fields.String(required=True)


class ModelListSchema(Schema):
    object = fields.String(required=True, metadata={"enum": ["list"]})
    data = fields.List(fields.Nested(ModelSchema), required=True)
