"""The key the docs' examples show: the newest working key prefix the signed-in member may see
in the organisation they act for (a developer: one they made; an admin or owner: any), with a
placeholder for the secret, which only its maker ever saw (only a hash of it is stored).

Anyone else (a visitor, a member with no working key they may see) sees a made-up prefix in the
install's mode, so an example never names another organisation's key, nor a key the member's
role hides, and always starts as issued keys do.
"""

from dataclasses import dataclass

from portal.keys.format import key_start
from portal.models import Membership
from portal.selectors import api_keys_visible

# What stands for the 32 secret characters: plain capitals, so it survives quoting in a shell,
# Python and JavaScript, and a call made with it fails as "malformed" rather than "unknown".
KEY_REST_PLACEHOLDER = "REST_OF_YOUR_KEY"
# A prefix that is obviously an example (the API docs' schema shows the same one).
EXAMPLE_PREFIX_PART = "ab12cd34"


@dataclass(frozen=True, slots=True)
class KeyExample:
    # mdk_test_k3j4h5g6: the public part of the key, shown on the keys page too.
    prefix: str
    # False: a made-up prefix (no working key, or nobody signed in).
    is_own: bool
    # The key's name on the keys page; "" for a made-up prefix.
    name: str = ""

    @property
    def start(self) -> str:
        """What a field can be prefilled with: the prefix and the separator before the secret."""
        return f"{self.prefix}_"

    @property
    def placeholder(self) -> str:
        """The whole key as an example shows it: the prefix, then a placeholder for the secret."""
        return f"{self.prefix}_{KEY_REST_PLACEHOLDER}"


def key_example_for(membership: Membership | None) -> KeyExample:
    """The newest usable key ``membership`` may see, or a made-up one in the install's mode
    (None: a visitor)."""
    if membership is not None:
        key = (
            api_keys_visible(membership=membership)
            .usable()
            # A rolled key in its grace period is on its way out: show its replacement.
            .filter(replaced_by__isnull=True)
            .order_by("-created")
            .only("prefix", "name")
            .first()
        )
        if key is not None:
            return KeyExample(prefix=key.prefix, is_own=True, name=key.name)
    return KeyExample(prefix=key_start() + EXAMPLE_PREFIX_PART, is_own=False)
