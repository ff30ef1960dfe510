"""The function role's credentials, wherever the runtime puts them."""

from __future__ import annotations

from dataclasses import dataclass, field

from alibabacloud_credentials.client import Client as CredentialClient

from copyimage.errors import ProviderError


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


def resolve_credentials(context: object) -> Credentials:
    """The function role's credentials: from the context (python3.10) or the default chain (python3.12)."""
    given = getattr(context, "credentials", None)
    key_id = getattr(given, "access_key_id", None) or getattr(given, "accessKeyId", None)
    if given is not None and key_id:
        secret = getattr(given, "access_key_secret", None) or getattr(given, "accessKeySecret", None)
        token = getattr(given, "security_token", None) or getattr(given, "securityToken", None)
        return Credentials(key_id, secret or "", token or None)
    try:
        model = CredentialClient().get_credential()
    except Exception as error:
        raise ProviderError(
            "no credentials: give the function a role (FC passes its credentials to the function) "
            f"or set ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET ({type(error).__name__})"
        ) from None
    return Credentials(model.access_key_id, model.access_key_secret, model.security_token or None)
