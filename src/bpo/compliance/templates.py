"""A library of common filing obligations, as schedules the calendar can expand.

Each template's rule is the calendar-year (or stated) case of the real one, as far as known;
firms with other year ends or staggers change the anchor or the rule. `basis` says the rule in
words with its source. Rolling follows the regulator's practice: forward where the law extends
a deadline that falls on a weekend or holiday (IRC 7503, AO 108(3), ...), backward where the
money must arrive by the last working day before (HMRC), never where it is not extended
(Companies House). Imported by `calendar`, which re-exports TEMPLATES and Template; this module
needs nothing from it at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bpo.compliance.calendar import Roll

QUARTER_ENDS = "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-1"
MONTH_ENDS = "FREQ=MONTHLY;BYMONTHDAY=-1"
YEAR_END = "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=31"
# Legal holidays for the IRS (IRC 7503) include the District of Columbia's, such as
# Emancipation Day (16 April), which moved the filing day to 18 April in 2016, 2017 and 2022.
IRS = "US-DC"


@dataclass(frozen=True, slots=True)
class Template:
    key: str
    regulator: str
    jurisdiction: str
    form: str
    title: str
    rrule: str
    offset_days: int
    offset_months: int
    roll: Roll
    lead_days: int
    evidence: tuple[str, ...]  # evidence record-class codes suggested
    basis: str = ""  # the rule in words, and where it comes from


_ALL = (
    Template(
        key="us-irs-941",
        regulator="IRS",
        jurisdiction=IRS,
        form="941",
        title="Employer's Quarterly Federal Tax Return",
        rrule=QUARTER_ENDS,
        offset_days=0,
        offset_months=1,
        roll="following",
        lead_days=14,
        evidence=("filing-copy", "payment-proof", "payroll-register"),
        basis=(
            "Last day of the month after the quarter (30 Apr, 31 Jul, 31 Oct, 31 Jan); IRC 7503."
        ),
    ),
    Template(
        key="us-irs-940",
        regulator="IRS",
        jurisdiction=IRS,
        form="940",
        title="Employer's Annual Federal Unemployment (FUTA) Tax Return",
        rrule=YEAR_END,
        offset_days=31,
        offset_months=0,
        roll="following",
        lead_days=21,
        evidence=("filing-copy", "payment-proof"),
        basis=("31 January after the calendar year; IRC 7503."),
    ),
    Template(
        key="us-ssa-w2",
        regulator="SSA",
        jurisdiction=IRS,
        form="W-2/W-3",
        title="Wage and Tax Statements (Copy A) and Transmittal",
        rrule=YEAR_END,
        offset_days=31,
        offset_months=0,
        roll="following",
        lead_days=21,
        evidence=("filing-copy", "submission-receipt", "payroll-register"),
        basis=("31 January after the calendar year, to the SSA and to employees; IRC 7503."),
    ),
    Template(
        key="us-irs-1099-nec",
        regulator="IRS",
        jurisdiction=IRS,
        form="1099-NEC",
        title="Nonemployee Compensation",
        rrule=YEAR_END,
        offset_days=31,
        offset_months=0,
        roll="following",
        lead_days=21,
        evidence=("filing-copy", "submission-receipt"),
        basis=("31 January after the calendar year, to the IRS and to recipients; IRC 7503."),
    ),
    Template(
        key="us-irs-1120",
        regulator="IRS",
        jurisdiction=IRS,
        form="1120",
        title="U.S. Corporation Income Tax Return",
        rrule=YEAR_END,
        offset_days=15,
        offset_months=3,
        roll="following",
        lead_days=30,
        evidence=("filing-copy", "payment-proof", "financial-statements", "tax-computation"),
        basis=(
            "15th day of the 4th month after the year end (15 April for a calendar year; 31 "
            "Dec + 3 months = 31 Mar, + 15 days); IRC 6072(b), 7503. Extension: Form 7004."
        ),
    ),
    Template(
        key="us-ny-st100",
        regulator="NYS DTF",
        jurisdiction="US-NY",
        form="ST-100",
        title="New York State and Local Quarterly Sales and Use Tax Return",
        rrule="FREQ=MONTHLY;BYMONTH=2,5,8,11;BYMONTHDAY=-1",
        offset_days=20,
        offset_months=0,
        roll="following",
        lead_days=10,
        evidence=("filing-copy", "payment-proof", "sales-ledger"),
        basis=(
            "20 days after the sales tax quarter (Mar-May, Jun-Aug, Sep-Nov, Dec-Feb): 20 "
            "Jun, 20 Sep, 20 Dec, 20 Mar; the next business day if a weekend or legal "
            "holiday."
        ),
    ),
    Template(
        key="gb-hmrc-vat",
        regulator="HMRC",
        jurisdiction="GB-ENG",
        form="VAT Return (MTD)",
        title="VAT Return and payment",
        rrule=QUARTER_ENDS,
        offset_days=7,
        offset_months=1,
        roll="preceding",
        lead_days=14,
        evidence=("filing-copy", "payment-proof", "vat-workings"),
        basis=(
            "1 calendar month and 7 days after the VAT quarter (stagger Mar/Jun/Sep/Dec; "
            "other staggers change BYMONTH). Payment must reach HMRC by the last working day "
            "before a weekend or bank holiday deadline."
        ),
    ),
    Template(
        key="gb-hmrc-paye",
        regulator="HMRC",
        jurisdiction="GB-ENG",
        form="P32 (RTI)",
        title="PAYE and NICs payment (electronic)",
        rrule="FREQ=MONTHLY;BYMONTHDAY=5",
        offset_days=17,
        offset_months=0,
        roll="preceding",
        lead_days=5,
        evidence=("payment-proof", "payroll-register"),
        basis=(
            "The 22nd after the tax month ending the 5th (the 19th by post); cleared funds by"
            " the last working day before if the 22nd is a weekend or bank holiday."
        ),
    ),
    Template(
        key="gb-hmrc-ct",
        regulator="HMRC",
        jurisdiction="GB-ENG",
        form="CT600 (payment)",
        title="Corporation Tax payment",
        rrule="FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=-1",
        offset_days=1,
        offset_months=9,
        roll="preceding",
        lead_days=30,
        evidence=("payment-proof", "tax-computation"),
        basis=(
            "9 months and 1 day after the accounting period end (not large companies' "
            "instalments); by the last working day before if that is a weekend or bank "
            "holiday. Year end 31 Dec in the rule: change BYMONTH (e.g. 3 for 31 March) for "
            "another."
        ),
    ),
    Template(
        key="gb-ch-cs01",
        regulator="Companies House",
        jurisdiction="GB-ENG",
        form="CS01",
        title="Confirmation statement",
        rrule="FREQ=YEARLY",
        offset_days=14,
        offset_months=0,
        roll="none",
        lead_days=14,
        evidence=("filing-copy", "register-of-members"),
        basis=(
            "Within 14 days after the end of each review period; the anchor is the review "
            "date (the incorporation anniversary). Not extended for weekends or holidays."
        ),
    ),
    Template(
        key="gb-ch-accounts",
        regulator="Companies House",
        jurisdiction="GB-ENG",
        form="AA",
        title="Annual accounts (private company)",
        rrule="FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=-1",
        offset_days=0,
        offset_months=9,
        roll="none",
        lead_days=45,
        evidence=("filing-copy", "financial-statements", "board-approval"),
        basis=(
            "9 months after the accounting reference date; the last day of the month if the "
            "ARD is a month end (31 Dec -> 30 Sep). Not extended for weekends or holidays."
        ),
    ),
    Template(
        key="de-ustva",
        regulator="Finanzamt",
        jurisdiction="DE",
        form="USt-VA",
        title="Umsatzsteuer-Voranmeldung (monthly)",
        rrule=MONTH_ENDS,
        offset_days=10,
        offset_months=0,
        roll="following",
        lead_days=5,
        evidence=("filing-copy", "submission-receipt", "payment-proof"),
        basis=(
            "10th of the following month (UStG 18(1)); a weekend or holiday moves it to the "
            "next working day (AO 108(3)); the firm's state (e.g. DE-BY) adds its holidays. "
            "Dauerfristverlaengerung adds one month (offset_months=1)."
        ),
    ),
    Template(
        key="de-lsta",
        regulator="Finanzamt",
        jurisdiction="DE",
        form="LStA",
        title="Lohnsteuer-Anmeldung (monthly)",
        rrule=MONTH_ENDS,
        offset_days=10,
        offset_months=0,
        roll="following",
        lead_days=5,
        evidence=("filing-copy", "submission-receipt", "payroll-register"),
        basis=("10th of the following month (EStG 41a(1)); next working day per AO 108(3)."),
    ),
    Template(
        key="fr-dgfip-ca3",
        regulator="DGFiP",
        jurisdiction="FR",
        form="3310-CA3",
        title="Declaration de TVA CA3 (regime reel normal)",
        rrule=MONTH_ENDS,
        offset_days=15,
        offset_months=0,
        roll="following",
        lead_days=5,
        evidence=("filing-copy", "payment-proof", "vat-workings"),
        basis=(
            "Monthly, between the 15th and the 24th of the following month depending on the "
            "company's legal form and location (its tax calendar); the 15th is the earliest, "
            "so set offset_days to the firm's own day."
        ),
    ),
    Template(
        key="jp-nta-withholding",
        regulator="NTA",
        jurisdiction="JP",
        form="Withholding tax payment slip",
        title="Withholding income tax (gensen shotokuzei) payment",
        rrule=MONTH_ENDS,
        offset_days=10,
        offset_months=0,
        roll="following",
        lead_days=5,
        evidence=("payment-proof", "payroll-register"),
        basis=(
            "10th of the month after payment of salaries or fees; the next business day if a "
            "weekend or holiday. Small employers with the special rule pay semi-annually "
            "instead."
        ),
    ),
    Template(
        key="eu-aifmd-annex-iv",
        regulator="CSSF (AIFMD)",
        jurisdiction="LU",
        form="AIFMD Annex IV",
        title="AIF reporting (quarterly)",
        rrule=QUARTER_ENDS,
        offset_days=30,
        offset_months=0,
        roll="preceding",
        lead_days=14,
        evidence=("filing-copy", "submission-receipt"),
        basis=(
            "30 days after the quarter for quarterly AIF reporting (AIFMD Art. 24; Delegated "
            "Regulation 231/2013 Art. 110); 45 days for funds of funds. Rolled back on a non-"
            "working day, the cautious reading: the NCA's practice varies."
        ),
    ),
)

TEMPLATES: dict[str, Template] = {template.key: template for template in _ALL}
