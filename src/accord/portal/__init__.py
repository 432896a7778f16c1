"""The customer portal (server-rendered pages where customers sign in with a one-time code or
link, manage their consents, follow their cases, answer proposals and talk to support), served
beside the API and the console; and the notices that carry proposals by e-mail and SMS."""

from accord.portal._app import COOKIE, portal_router, static_files
from accord.portal._catalogue import Catalogue, Purpose, load_catalogue, load_purposes
from accord.portal._channels import ConfirmationNotices
from accord.portal._sign_in import SIGN_IN_JOURNEY, SIGN_IN_JOURNEY_TEXT, SessionSigner, SignIns

__all__ = [
    "COOKIE",
    "SIGN_IN_JOURNEY",
    "SIGN_IN_JOURNEY_TEXT",
    "Catalogue",
    "ConfirmationNotices",
    "Purpose",
    "SessionSigner",
    "SignIns",
    "load_catalogue",
    "load_purposes",
    "portal_router",
    "static_files",
]
