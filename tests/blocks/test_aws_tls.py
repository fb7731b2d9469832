"""AwsClientParameters' certificate checks against moto over HTTPS with a CA of its
own: AWS_CA_BUNDLE, ca_bundle in the config file, verify_cert_path, verify=False."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import SSLError

from blocks import BlockValidationError
from blocks.aws import AwsClientParameters, AwsCredentials

# The machine's AWS settings are hidden from every test.
pytestmark = pytest.mark.usefixtures("hidden_aws_settings")


def credentials(url: str, **parameters: Any) -> AwsCredentials:
    """Credentials for the HTTPS server, with these client parameters."""
    return AwsCredentials(
        aws_access_key_id="AKIATEST",
        aws_secret_access_key=secrets.token_hex(16),
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=url, **parameters),
    )


def list_buckets(creds: AwsCredentials) -> int:
    """Ask the server for its buckets through the block's S3 client; return the
    HTTP status (moto's buckets are shared by the whole test process)."""
    with creds:
        response = creds.get_s3_client().list_buckets()
        return int(response["ResponseMetadata"]["HTTPStatusCode"])


def test_unknown_ca_is_refused(moto_tls: Any) -> None:
    """Without the CA, the server's certificate is refused: the check is real."""
    with pytest.raises(SSLError):
        list_buckets(credentials(moto_tls.url))


def test_aws_ca_bundle_is_honoured(
    moto_tls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_CA_BUNDLE reaches the client, as with plain boto3 (verify left at True)."""
    monkeypatch.setenv("AWS_CA_BUNDLE", str(moto_tls.ca_file))
    assert list_buckets(credentials(moto_tls.url)) == 200
    assert list_buckets(credentials(moto_tls.url, verify=True)) == 200


def test_ca_bundle_of_the_config_file_is_honoured(
    moto_tls: Any, tmp_path: Path
) -> None:
    """ca_bundle in the AWS config file reaches the client."""
    (tmp_path / "aws-config").write_text(f"[default]\nca_bundle = {moto_tls.ca_file}\n")
    assert list_buckets(credentials(moto_tls.url)) == 200


def test_verify_cert_path_and_verify_path(moto_tls: Any) -> None:
    """verify_cert_path, or verify given a path, checks with that CA."""
    assert (
        list_buckets(credentials(moto_tls.url, verify_cert_path=str(moto_tls.ca_file)))
        == 200
    )
    assert list_buckets(credentials(moto_tls.url, verify=str(moto_tls.ca_file))) == 200


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_false_skips_the_check(
    moto_tls: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """verify=False wins over AWS_CA_BUNDLE, even one that names no CA of the server."""
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    assert list_buckets(credentials(moto_tls.url, verify=False)) == 200


def test_contradictory_verify_options_are_refused() -> None:
    """verify=False with verify_cert_path, or two different bundles, is an error."""
    with pytest.raises(ValueError, match="verify_cert_path"):
        AwsClientParameters(verify=False, verify_cert_path="/tmp/ca.pem")
    with pytest.raises(ValueError, match="two CA bundles"):
        AwsClientParameters(verify="/tmp/a.pem", verify_cert_path="/tmp/b.pem")
    with pytest.raises(BlockValidationError, match="verify_cert_path"):
        AwsCredentials(
            aws_client_parameters={"verify": False, "verify_cert_path": "/tmp/ca.pem"}
        )
