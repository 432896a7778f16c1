"""Next best action: offer catalogues (the actions a journey may choose from, the features it
may use and where each is read, a contact policy, a ranking) and the pure choice over them,
with a customer-facing reason and an internal explanation for every choice."""

from accord.offers._catalogue import (
    Compiled,
    ContactPolicy,
    Offer,
    OfferCatalogue,
    load_offer_catalogue,
    parse_offer_catalogue,
)
from accord.offers._choose import (
    Choice,
    Contact,
    PolicyCheck,
    PolicyVerdict,
    Stats,
    choose,
    plain_data,
)
from accord.offers._store import Offers

__all__ = [
    "Choice",
    "Compiled",
    "Contact",
    "ContactPolicy",
    "Offer",
    "OfferCatalogue",
    "Offers",
    "PolicyCheck",
    "PolicyVerdict",
    "Stats",
    "choose",
    "load_offer_catalogue",
    "parse_offer_catalogue",
    "plain_data",
]
