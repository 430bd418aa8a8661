"""Who acted, as a row records it."""


def acting_user(user):
    """``user`` as the user a row records: None for nobody, and for a user
    that is not saved (``AnonymousUser``, a user built but never stored), which
    a foreign key cannot point to."""
    return user if user is not None and user.pk else None


def acting_user_id(user):
    """The id of ``acting_user(user)``, for a task's arguments."""
    user = acting_user(user)
    return user.pk if user is not None else None
