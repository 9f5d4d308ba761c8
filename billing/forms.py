"""The budget form on the billing page: amounts typed in money, kept in whole cents."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from billing.models import Budget, Tier
from billing.money import money_text
from billing.services.budgets import MAX_ALERTS, budget_limit_cents

PERCENT_CHOICES = [(50, "50 %"), (80, "80 %"), (100, "100 %")]


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


class BudgetForm(forms.Form):
    amount = forms.DecimalField(
        label="Budget for usage charges per period",
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        error_messages={
            "min_value": "The budget must be more than zero.",
            "max_decimal_places": "Give the budget in whole cents (at most 2 decimals).",
            "invalid": "Enter the budget as an amount, e.g. 50 or 49.99.",
            "required": "Enter a budget.",
        },
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "inputmode": "decimal"}),
    )
    alert_percents = forms.TypedMultipleChoiceField(
        label="Email me at",
        choices=PERCENT_CHOICES,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    alert_amounts = forms.CharField(
        label="and at these amounts",
        required=False,
        max_length=200,
        help_text="Optional, comma-separated, e.g. 25, 40.50",
    )

    def __init__(self, *args, tier: Tier, **kwargs):
        super().__init__(*args, **kwargs)
        self.tier = tier
        self.limit_cents = budget_limit_cents(tier)
        if self.limit_cents is not None:
            limit = money_text(self.limit_cents, tier.currency)
            self.fields["amount"].help_text = f"At most {limit}, {tier.name}'s spend cap."
            self.fields["amount"].widget.attrs["max"] = str(Decimal(self.limit_cents) / 100)

    @classmethod
    def for_budget(cls, budget: Budget | None, *, tier: Tier) -> "BudgetForm":
        if budget is None:
            return cls(tier=tier, initial={"alert_percents": [50, 80, 100]})
        return cls(
            tier=tier,
            initial={
                "amount": f"{Decimal(budget.amount_cents) / 100:.2f}",
                "alert_percents": budget.alert_percents,
                "alert_amounts": ", ".join(
                    f"{Decimal(c) / 100:.2f}" for c in budget.alert_amounts_cents
                ),
            },
        )

    def clean_amount(self) -> int:
        cents = _cents(self.cleaned_data["amount"])
        if self.limit_cents is not None and cents > self.limit_cents:
            limit = money_text(self.limit_cents, self.tier.currency)
            raise forms.ValidationError(
                f"The budget cannot be more than {self.tier.name}'s spend cap of {limit}: "
                "past it, calls are refused and nothing more is billed."
            )
        return cents

    def clean_alert_amounts(self) -> list[int]:
        text = self.cleaned_data["alert_amounts"].strip()
        if not text:
            return []
        amounts = []
        for part in text.split(","):
            part = part.strip().lstrip("$€£")
            try:
                amount = Decimal(part)
            except InvalidOperation:
                raise forms.ValidationError(
                    f"“{part}” is not an amount; separate amounts with commas, e.g. 25, 40.50."
                ) from None
            if not amount.is_finite() or amount <= 0:
                raise forms.ValidationError("Each alert amount must be more than zero.")
            if amount.as_tuple().exponent < -2:  # type: ignore[operator]
                raise forms.ValidationError("Give alert amounts in whole cents.")
            cents = _cents(amount)
            if self.limit_cents is not None and cents > self.limit_cents:
                limit = money_text(self.limit_cents, self.tier.currency)
                raise forms.ValidationError(
                    f"{money_text(cents, self.tier.currency)} is above the spend cap of "
                    f"{limit}: usage charges never get there."
                )
            amounts.append(cents)
        return amounts

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        percents = data.get("alert_percents") or []
        amounts = data.get("alert_amounts") or []
        if "alert_percents" in data and "alert_amounts" in data:
            if not percents and not amounts:
                raise forms.ValidationError("Choose at least one amount to be emailed at.")
            if len(set(percents)) + len(set(amounts)) > MAX_ALERTS:
                raise forms.ValidationError(f"Choose at most {MAX_ALERTS} alert amounts.")
        return data
