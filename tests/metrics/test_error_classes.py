"""Error classes: the seven provider categories and DAC's own four, from status and body."""

import pytest
from django.http import HttpResponse, JsonResponse

from dac.errors import error_body
from metrics.classify import DAC_CLASSES, ERROR_CLASSES, PROVIDER_CATEGORIES, error_class_for, error_class_of_response


def test_there_are_seven_provider_categories_and_four_distinct_dac_classes():
    assert PROVIDER_CATEGORIES == ("auth", "bad_request", "rate_limited", "quota_exceeded", "content_filtered", "timeout", "unavailable")
    assert DAC_CLASSES == ("dac_validation", "dac_auth", "dac_quota", "dac_internal")
    assert len(set(ERROR_CLASSES)) == 11


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (200, None, ""),
        (302, None, ""),
        (400, "validation_error", "dac_validation"),
        (404, "not_found", "dac_validation"),
        (405, None, "dac_validation"),
        (401, "not_authenticated", "dac_auth"),
        (403, "forbidden", "dac_auth"),
        (429, "quota_exceeded", "dac_quota"),  # DAC's own limit, not the provider's quota
        (500, None, "dac_internal"),
        (502, "timeout", "timeout"),
        (502, "quota_exceeded", "quota_exceeded"),
        (502, "content_filtered", "content_filtered"),
        (503, "unavailable", "unavailable"),
        (502, "no_provider", "dac_internal"),
    ],
)
def test_status_and_error_code_give_the_class(status, code, expected):
    assert error_class_for(status, code) == expected


def test_the_code_is_read_from_the_one_json_error_shape():
    response = JsonResponse(error_body("rate_limited", "Provider says slow down."), status=502)
    assert error_class_of_response(response) == "rate_limited"


def test_a_non_json_5xx_is_dac_internal():
    assert error_class_of_response(HttpResponse("boom", status=500)) == "dac_internal"


def test_a_provider_code_on_a_4xx_is_still_classed_by_status():
    assert error_class_of_response(JsonResponse(error_body("auth", "x"), status=403)) == "dac_auth"
