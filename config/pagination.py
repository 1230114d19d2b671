"""The API's pagination: DRF's limit/offset, with a largest page.

Without `max_limit` any `limit` is taken: `?limit=9223372036854775807` made offset + limit overflow PostgreSQL's bigint
in the page's LIMIT clause (a 500, found by the schema fuzz test). Past the largest page the page is that large, as
DRF does for any limit above `max_limit`; an offset past the end already gives an empty page without a query.
"""

from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000
