"""Money: ISO 4217 currencies, their minor units, and the one rounding rule.

Every amount is a ``Decimal``. The rule: a line's amount is its quantity times its unit price,
rounded half-up to the currency's minor unit (2 decimal places for most currencies, 0 for JPY,
KRW and the others below, 3 for BHD, KWD …); a subtotal is the sum of its (already rounded)
lines, and the total is the subtotal (no tax is charged yet).
"""

import re
from decimal import ROUND_HALF_UP, Decimal

# Active ISO 4217 codes (funds and precious metals left out).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG
    """.split()  # noqa: SIM905
)
# Currencies whose minor unit is not the usual 2 decimal places.
MINOR_UNITS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),  # fmt: skip
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}
_CODE = re.compile(r"^[A-Z]{3}$")


def currency_problem(code) -> str | None:
    """Why ``code`` is not a currency we bill in, or None."""
    if not isinstance(code, str) or not _CODE.match(code):
        return "must be an ISO 4217 currency code: three capital letters, e.g. USD"
    if code not in CURRENCIES:
        return f"{code!r} is not an ISO 4217 currency code"
    return None


def minor_unit(currency: str) -> int:
    """Decimal places of the currency's smallest unit."""
    return MINOR_UNITS.get(currency, 2)


def exponent(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))


def round_amount(value: Decimal, currency: str) -> Decimal:
    """``value`` rounded half-up to the currency's minor unit: THE rounding rule."""
    return value.quantize(exponent(currency), rounding=ROUND_HALF_UP)


def text(amount: Decimal, currency: str) -> str:
    """An amount as the API writes it: a decimal string with the currency's places."""
    return f"{round_amount(amount, currency):f}"


def plain(value: Decimal) -> str:
    """A quantity or unit price without trailing zeros or an exponent: ``12.5``, ``100``."""
    if value == 0:
        return "0"
    text_ = f"{value.normalize():f}"
    return text_
