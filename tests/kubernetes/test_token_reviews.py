"""The API server double's TokenReviews, through the official client's own API class: pod-bound
service account tokens are vouched for as a real API server does, and refused otherwise."""

import pytest
from kubernetes import client as k8s

from tests.kubernetes.apiserver_double import ApiServerDouble

NS, ACCOUNT = "gantry-acme", "envoy-edge"


@pytest.fixture
def double():
    server = ApiServerDouble().start()
    yield server
    server.stop()


@pytest.fixture
def reviews(double):
    api = k8s.AuthenticationV1Api(k8s.ApiClient(k8s.Configuration(host=double.host)))

    def review(token: str, audiences=("gantry-xds",)):
        spec = k8s.V1TokenReviewSpec(token=token, audiences=list(audiences))
        return api.create_token_review(k8s.V1TokenReview(spec=spec)).status

    return review


def test_a_pod_bound_token_is_vouched_for_with_its_pod(double, reviews):
    uid = double.add_pod(NS, "envoy-edge-1", {"gantry.io/gateway": "edge"}, ACCOUNT)
    status = reviews(double.mint_token(NS, "envoy-edge-1"))
    assert status.authenticated is True and status.audiences == ["gantry-xds"]
    assert status.user.username == "system:serviceaccount:gantry-acme:envoy-edge"
    assert status.user.extra == {
        "authentication.kubernetes.io/pod-name": ["envoy-edge-1"],
        "authentication.kubernetes.io/pod-uid": [uid],
    }


def test_unknown_expired_other_audience_and_orphaned_tokens_are_not_authenticated(double, reviews):
    double.add_pod(NS, "envoy-edge-1", {}, ACCOUNT)
    expired = double.mint_token(NS, "envoy-edge-1", expires_in=-1)
    api_audience = double.mint_token(NS, "envoy-edge-1", audiences=("https://kubernetes",))
    orphaned = double.mint_token(NS, "envoy-edge-1")
    for token, reason in ((expired, "expired"), (api_audience, "audiences"),
                          ("not-a-token", "invalid bearer token")):  # fmt: skip
        status = reviews(token)
        assert status.authenticated is False and reason in status.error, token
    double.delete("Pod", NS, "envoy-edge-1")
    status = reviews(orphaned)
    assert status.authenticated is False and "not found" in status.error
    # The same name again is another pod (another uid): the old token is not its.
    double.add_pod(NS, "envoy-edge-1", {}, ACCOUNT)
    status = reviews(orphaned)
    assert status.authenticated is False and "does not match" in status.error


def test_a_malformed_review_is_refused_like_the_schemas_say(double):
    api = k8s.ApiClient(k8s.Configuration(host=double.host))
    with pytest.raises(k8s.ApiException) as caught:
        api.call_api(
            "/apis/authentication.k8s.io/v1/tokenreviews", "POST",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"tokn": "x"}},
            header_params={"Content-Type": "application/json"}, response_type="object",
        )  # fmt: skip
    assert caught.value.status == 422 and "tokn" in caught.value.body
