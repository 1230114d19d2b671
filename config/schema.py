"""OpenAPI schema: every operation documents the refusals it can answer, not only its success.

Generated inputs (schemathesis, tests/security/test_api_schema_fuzz.py) found list filters answering an
undocumented 400; clients must be able to rely on the documented codes.
"""

from drf_spectacular.openapi import AutoSchema

REFUSALS = {
    "400": "The input is not valid; the body says why. Nothing was changed.",
    "401": "Not authenticated (session or `Authorization: Token …`).",
    "403": "Authenticated, but not allowed (staff; refunds need the Finance group).",
    "404": "No such object.",
}


class DocumentedRefusalsSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in REFUSALS.items():
            if code == "404" and "{" not in self.path:
                continue  # collections exist
            responses.setdefault(code, {"description": description})
        return responses
