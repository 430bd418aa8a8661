"""How an import says no: ImportRefused, and the collector of its problems."""

from dataclasses import dataclass, field

# Operators fix a file from the top; past this many, the rest is a count.
MAX_REPORTED_PROBLEMS = 100


class ImportRefused(Exception):
    """The import was refused; nothing was written.

    ``problems`` holds the first MAX_REPORTED_PROBLEMS messages, each starting
    with the JSON path it is about; ``total`` counts all of them.
    """

    def __init__(self, problems: list[str], total: int | None = None):
        super().__init__(problems[0] if problems else "import refused")
        self.problems = problems
        self.total = len(problems) if total is None else total

    @property
    def more(self) -> int:
        return self.total - len(self.problems)

    def lines(self) -> list[str]:
        """The lines to show an operator: the problems, then how many more."""
        if self.more > 0:
            return [*self.problems, f"... and {self.more} more problems"]
        return list(self.problems)


@dataclass
class Problems:
    """Every problem of a file, counted; the first MAX_REPORTED_PROBLEMS kept
    as "path: message"."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.count += 1
        if len(self.first) < MAX_REPORTED_PROBLEMS:
            self.first.append(f"{path}: {message}")

    def extend(self, other: "Problems") -> None:
        """Add ``other``'s problems after these (its kept ones, and its count)."""
        for line in other.first:
            self.count += 1
            if len(self.first) < MAX_REPORTED_PROBLEMS:
                self.first.append(line)
        self.count += other.count - len(other.first)

    def raise_if_any(self) -> None:
        if self.count:
            raise ImportRefused(self.first, self.count)
