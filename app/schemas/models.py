"""The model list and model object, in OpenAI's format (plus what the gateway adds)."""

from marshmallow import Schema, fields

from app.schemas.config import ENDPOINT_FAMILIES


class ModelInfoSchema(Schema):
    """What the gateway says about a model beyond OpenAI's fields (clients ignore it)."""

    endpoints = fields.List(
        fields.String(metadata={"enum": list(ENDPOINT_FAMILIES)}), required=True,
        metadata={"description": "The API families the model serves: `chat` "
                                 "(/v1/chat/completions and the APIs translated to it), "
                                 "`embeddings` (/v1/embeddings), `completions` "
                                 "(/v1/completions)"})


class ModelSchema(Schema):
    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["model"]})
    created = fields.Integer(required=True)
    owned_by = fields.String(required=True)
    neuroroute = fields.Nested(ModelInfoSchema, required=True)


class ModelListSchema(Schema):
    object = fields.String(required=True, metadata={"enum": ["list"]})
    data = fields.List(fields.Nested(ModelSchema), required=True)
