"""Charts as inline SVG, drawn on the server: bars and lines over evenly spaced periods. Pure:
``chart()`` returns the geometry a template draws (``partials/chart.html``), with the same
values for the data table under it."""

from dataclasses import dataclass, field

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 24


@dataclass(frozen=True)
class Series:
    name: str
    values: list  # one per period; None: no value (a gap)
    kind: str = "bar"  # bar | line
    css: str = ""  # extra class: warn, bad, p99


@dataclass
class Chart:
    title: str
    description: str
    unit: str
    labels: list[str]
    series: list[Series]
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    ticks: list[dict] = field(default_factory=list)
    x_labels: list[dict] = field(default_factory=list)

    @property
    def rows(self) -> list[dict]:
        """The data table: one row per period, a cell per series."""
        return [
            {"label": label, "values": [s.values[i] for s in self.series]}
            for i, label in enumerate(self.labels)
        ]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    return f"{value:g}" if value < 1e6 else f"{value:.3g}"


def chart(title: str, description: str, unit: str, labels: list[str],
          series: list[Series]) -> Chart:  # fmt: skip
    """Lays out ``series`` over ``labels`` (periods, oldest first)."""
    result = Chart(title, description, unit, labels, series)
    count = max(len(labels), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_ceiling(max((v for s in series for v in s.values if v is not None), default=0))
    slot = plot_w / count
    bars = [s for s in series if s.kind == "bar"]

    def y(value: float) -> float:
        return round(TOP + plot_h - value / top * plot_h, 1)

    for b, item in enumerate(bars):
        width = slot * 0.8 / len(bars)
        for i, value in enumerate(item.values):
            if not value:
                continue
            x = LEFT + i * slot + slot * 0.1 + b * width
            result.bars.append({
                "x": round(x, 1), "y": y(value), "width": round(max(width, 0.5), 1),
                "height": round(TOP + plot_h - y(value), 1), "css": item.css,
                "title": f"{item.name} {labels[i]}: {_number(value)} {unit}",
            })  # fmt: skip
    for item in series:
        if item.kind != "line":
            continue
        segments, current = [], []
        for i, value in enumerate(item.values):
            if value is None:
                if current:
                    segments.append(current)
                current = []
                continue
            current.append(f"{round(LEFT + (i + 0.5) * slot, 1)},{y(value)}")
        if current:
            segments.append(current)
        for points in segments:
            if len(points) == 1:  # a lone value: a short flat stroke so it shows
                x_, y_ = points[0].split(",")
                points = [f"{float(x_) - 2},{y_}", f"{float(x_) + 2},{y_}"]
            result.lines.append({"points": " ".join(points), "css": item.css})
    result.ticks = [{"y": y(v), "label": _number(v)} for v in (0, top / 2, top)]
    if labels:
        shown = sorted({0, len(labels) // 2, len(labels) - 1})
        anchors = {0: "start", len(labels) - 1: "end"}  # the ends stay inside the chart
        result.x_labels = [
            {"x": round(LEFT + (i + 0.5) * slot, 1), "label": labels[i],
             "anchor": anchors.get(i, "middle") if len(labels) > 1 else "middle"}
            for i in shown
        ]  # fmt: skip
    return result
