from django.db import models


class ChangeStamp(models.Model):
    """How far each database connection has changed the billing tables
    (core.stamps): one row per PostgreSQL backend, its ``version`` set from
    a sequence by a statement trigger on every billing table. The sum over
    the rows grows with every committed change, whatever the order of the
    commits: the pages' cache keys (core.pagecache) are built on it."""

    backend = models.IntegerField(primary_key=True)
    version = models.BigIntegerField()

    class Meta:
        verbose_name = "change stamp"

    def __str__(self):
        return f"backend {self.backend}: {self.version}"
