"""Amazon States Language → a graph of states (nested Map/Parallel, Next/Choice/Catch/Retry edges) → Graphviz DOT.

Pure functions: the console draws the DOT in the browser with Graphviz compiled to wasm (@viz-js/viz), so no
system package is needed. Every state's SVG group gets the id `state-<path>` the pages colour by status."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field


@dataclass
class Node:
    path: str  # "Train families/Train" for a state inside a Map
    name: str
    type: str
    parent: str | None = None  # the Map/Parallel state (path) this state runs inside
    branch: int | None = None  # Parallel branch index
    retries: list[str] = field(default_factory=list)  # "States.ALL x3" per Retry rule


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # next | choice | default | catch | retry | start
    label: str = ""


@dataclass
class Graph:
    nodes: dict[str, Node]
    edges: list[Edge]
    start: str

    def children(self, parent: str | None) -> list[Node]:
        return [n for n in self.nodes.values() if n.parent == parent]


def _errors(rule: dict) -> str:
    errors = rule.get("ErrorEquals", [])
    return ", ".join(e.removeprefix("States.") for e in errors)


def build_graph(definition: dict) -> Graph:
    """Every state of a definition (and of its Map iterators and Parallel branches), with its edges."""
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []

    def walk(states: dict, start_at: str, prefix: str, parent: str | None, branch: int | None) -> str:
        def path(name: str) -> str:
            return f"{prefix}{name}"

        for name, state in states.items():
            node = Node(path(name), name, state["Type"], parent, branch)
            node.retries = [f"{_errors(r)} x{r.get('MaxAttempts', 3)}" for r in state.get("Retry", [])]
            for rule in state.get("Retry", []):
                edges.append(Edge(path(name), path(name), "retry", f"retry x{rule.get('MaxAttempts', 3)}"))
            nodes[node.path] = node
            if "Next" in state:
                edges.append(Edge(node.path, path(state["Next"]), "next"))
            for choice in state.get("Choices", []):
                edges.append(Edge(node.path, path(choice["Next"]), "choice", _choice_label(choice)))
            if "Default" in state:
                edges.append(Edge(node.path, path(state["Default"]), "default", "default"))
            for catch in state.get("Catch", []):
                edges.append(Edge(node.path, path(catch["Next"]), "catch", f"catch {_errors(catch)}"))
            if state["Type"] == "Map":
                inner = state.get("ItemProcessor") or state.get("Iterator") or {}
                first = walk(inner.get("States", {}), inner["StartAt"], f"{node.path}/", node.path, None)
                edges.append(Edge(node.path, first, "start", "each item"))
            elif state["Type"] == "Parallel":
                for i, branch_def in enumerate(state.get("Branches", [])):
                    first = walk(branch_def["States"], branch_def["StartAt"], f"{node.path}/{i}/", node.path, i)
                    edges.append(Edge(node.path, first, "start", f"branch {i + 1}"))
        return path(start_at)

    start = walk(definition["States"], definition["StartAt"], "", None, None)
    return Graph(nodes, edges, start)


def _choice_label(choice: dict) -> str:
    variable = choice.get("Variable", "")
    ops = [k for k in choice if k not in ("Variable", "Next")]
    return f"{variable} {ops[0] if ops else ''}".strip()[:40]


def element_id(path: str) -> str:
    """A stable HTML/SVG id for a state path (names may hold spaces and any character)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-").lower()[:48]
    return f"state-{slug}-{hashlib.sha1(path.encode()).hexdigest()[:6]}"


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


SHAPES = {"Choice": "diamond", "Succeed": "oval", "Fail": "oval", "Pass": "box", "Wait": "box"}


def to_dot(graph: Graph) -> str:
    """Top to bottom; Map and Parallel states as nested boxes (clusters) around the states they run."""
    lines = [
        "digraph training {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.35, ranksep=0.45, bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#8a94a6", fontname="Helvetica", '
        "fontsize=11, height=0.36];",
        '  edge [color="#8a94a6", fontname="Helvetica", fontsize=9, arrowsize=0.7];',
        '  "__start" [label="Start", shape=circle, width=0.45, fixedsize=true, id="state-start", fillcolor="#e8edf5"];',
    ]

    def node_line(node: Node, indent: str) -> str:
        label = f"{node.name}\n({node.type})" if node.type in ("Map", "Parallel") else node.name
        shape = SHAPES.get(node.type, "box")
        return (
            f"{indent}{_quote(node.path)} [label={_quote(label)}, shape={shape}, id={_quote(element_id(node.path))}, "
            f"tooltip={_quote(' · '.join([node.type + ': ' + node.path, *('retry ' + r for r in node.retries)]))}];"
        )

    def emit(parent: str | None, indent: str) -> None:
        for node in graph.children(parent):
            if node.type in ("Map", "Parallel"):
                cluster = element_id(node.path).replace("state-", "cluster_")
                lines.append(f"{indent}subgraph {_quote(cluster)} {{")
                lines.append(
                    f'{indent}  graph [label="", style="rounded,dashed", color="#8a94a6", '
                    f"id={_quote('box-' + element_id(node.path))}];"
                )
                lines.append(node_line(node, indent + "  "))
                emit(node.path, indent + "  ")
                lines.append(f"{indent}}}")
            else:
                lines.append(node_line(node, indent))

    emit(None, "  ")
    lines.append(f'  "__start" -> {_quote(graph.start)};')
    styles = {
        "next": "",
        "start": ', style=dashed, color="#5b6b86"',
        "choice": "",
        "default": ", style=dashed",
        "catch": ', style=dashed, color="#c0392b", fontcolor="#c0392b", weight=0',
        "retry": ', style=dotted, color="#b7791f", fontcolor="#b7791f", dir=back',
    }
    for edge in graph.edges:
        label = f", label={_quote(edge.label)}" if edge.label else ""
        lines.append(
            f"  {_quote(edge.source)} -> {_quote(edge.target)} [id={_quote(_edge_id(edge))}{label}"
            f"{styles.get(edge.kind, '')}];"
        )
    lines.append("}")
    return "\n".join(lines)


def _edge_id(edge: Edge) -> str:
    return f"edge-{edge.kind}-{hashlib.sha1(f'{edge.source}>{edge.target}'.encode()).hexdigest()[:8]}"
