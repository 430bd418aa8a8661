"""Change stamps: one number that moves with every committed change to the
billing tables, so that a page rendered once can be served again until
anything it could show has changed (core.pagecache).

On PostgreSQL a statement trigger on every billing table (``install``,
after every ``migrate``) sets its connection's row of core_changestamp to
the next value of a sequence. The stamp is the sum and the maximum of those
rows: each committed change raises its backend's row, so the sum rises with
every commit, in whatever order concurrent transactions commit (a single
counter in commit order would need a row every writer locks; a sequence
alone is handed out in start order, not commit order). A backend writes
only its own row, so no two transactions ever wait on each other for it.

Read the stamp *before* what it keys: a change committed in between makes
the page newer than its key, never older.

SQLite has no statement triggers: ``current`` is None there and nothing is
cached (the embedded setup serves one clerk; production is PostgreSQL).
"""

from django.db import DEFAULT_DB_ALIAS, connections

# The apps whose tables the pages show, every table of them stamped...
STAMPED_APPS = ("customers", "invoices", "billruns", "notifications", "webhooks", "api")
# ...but these, which no cached page reads and which change on every write
# of another kind (a number handed out, an API request remembered, a
# webhook attempt): stamping them would only empty the cache more often.
UNSTAMPED_TABLES = frozenset(
    {
        "customers_numbercounter",
        "invoices_numbersequence",
        "api_idempotentrequest",
        "webhooks_deliveryattempt",
    }
)
TRIGGER = "core_changestamp"
EVENTS = "INSERT OR UPDATE OR DELETE OR TRUNCATE"
# And the tables of who may do what (users, groups, permissions, content
# types: the permissions kept under the stamp, core.auth), users on what
# the pages show of them; signing in (last_login) changes nothing shown.
AUTH_APPS = ("auth", "contenttypes")
USER_TABLE_EVENTS = (
    "INSERT OR UPDATE OF username, is_active, is_staff, is_superuser OR DELETE OR TRUNCATE"
)


def stamped_tables():
    """{table: the events that stamp it}."""
    from django.apps import apps
    from django.contrib.auth import get_user_model

    tables = {}
    for label in STAMPED_APPS + AUTH_APPS:
        for model in apps.get_app_config(label).get_models(include_auto_created=True):
            table = model._meta.db_table
            if model._meta.managed and not model._meta.proxy and table not in UNSTAMPED_TABLES:
                tables[table] = EVENTS
    tables[get_user_model()._meta.db_table] = USER_TABLE_EVENTS
    return tables


def install(using=DEFAULT_DB_ALIAS):
    """Create (or replace) the trigger on every stamped table that exists,
    and drop it from the tables no longer stamped. Idempotent; PostgreSQL
    only."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    existing = set(connection.introspection.table_names())
    if "core_changestamp" not in existing:
        return  # migrating core backwards
    wanted = stamped_tables()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = %s",
            [TRIGGER],
        )
        triggered = {row[0] for row in cursor.fetchall()}
        for table in sorted(triggered - set(wanted)):
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {quote(table)}")
        for table, events in sorted(wanted.items()):
            if table in existing:
                cursor.execute(
                    f"CREATE OR REPLACE TRIGGER {TRIGGER} AFTER {events} ON {quote(table)} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION core_changestamp_bump()"
                )


def install_after_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs):
    install(using)


def current(using=DEFAULT_DB_ALIAS):
    """The stamp, as text ("sum.max"), or None where changes are not stamped."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(version), 0), coalesce(max(version), 0) FROM core_changestamp"
        )
        total, top = cursor.fetchone()
    return f"{total}.{top}"


def for_user(user):
    """``current``, read once per request: kept on the request's user (a
    new object every request), so that the permissions (core.auth), the
    page and its header share it."""
    try:
        return user._change_stamp
    except AttributeError:
        user._change_stamp = current()
        return user._change_stamp


def for_request(request):
    return for_user(request.user)


def fold(using=DEFAULT_DB_ALIAS):
    """Fold the rows of backends that no longer exist into row 0, keeping
    the sum (the sweeper, once a minute): one row per live connection stays.
    Returns how many rows were folded."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH dead AS (
                DELETE FROM core_changestamp
                WHERE backend <> 0
                  AND backend NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
                RETURNING version
            ), folded AS (
                INSERT INTO core_changestamp (backend, version)
                SELECT 0, sum(version) FROM dead HAVING count(*) > 0
                ON CONFLICT (backend)
                DO UPDATE SET version = core_changestamp.version + excluded.version
                RETURNING 1
            )
            SELECT count(*) FROM dead, (SELECT count(*) FROM folded) AS f
            """
        )
        return cursor.fetchone()[0]
