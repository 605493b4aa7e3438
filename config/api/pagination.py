"""Page-number pagination: ``?page=2&page_size=100`` (at most 500 a page)."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500
