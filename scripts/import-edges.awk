# import-edges.awk: print "FROM TO" for every import from one source file
# of a crate to another (paths relative to the crate's src/). Run by
# scripts/import-cycles.sh with -v src=CRATE/src/ and the crate's files.
#
# A path counts wherever it appears (use trees expanded, and inline
# paths such as `crate::a::f()`): `crate::`, `super::` (the parent file),
# `self::`, and a bare `child::` naming a submodule of the file. Each path
# resolves to the deepest file module it names, so `super::Type` is the
# parent file and `super::sibling::Type` the sibling's file. Test modules
# (`#[cfg(test)]` then an inline `mod`) end a file's scan.

function module_of(file,   m) {
    m = substr(file, length(src) + 1)
    sub(/\.rs$/, "", m)
    sub(/(^|\/)mod$/, "", m)
    if (m == "lib" || m == "main") m = ""
    gsub(/\//, "::", m)
    return m
}

function join(a, b) { return a == "" ? b : a "::" b }

function parent(m) { if (m !~ /::/) return ""; sub(/::[^:]*$/, "", m); return m }

# The file a path used in module `cur` names, or "" when it is outside
# the crate.
function resolve(cur, path,   seg, n, i, m) {
    n = split(path, seg, "::")
    i = 1
    if (seg[1] == "crate") { m = ""; i = 2 }
    else if (seg[1] == "self") { m = cur; i = 2 }
    else if (seg[1] == "super") {
        m = cur
        while (i <= n && seg[i] == "super") { m = parent(m); i++ }
    } else if (join(cur, seg[1]) in file_of) m = cur
    else return ""
    for (; i <= n; i++) {
        if (!(join(m, seg[i]) in file_of)) break
        m = join(m, seg[i])
    }
    return file_of[m]
}

# Expand a use tree (no blanks) into paths[1..npaths].
function expand(prefix, tree,   p, head, inner, depth, i, ch, start) {
    p = index(tree, "{")
    if (p == 0) { paths[++npaths] = prefix tree; return }
    head = substr(tree, 1, p - 1)
    inner = substr(tree, p + 1, length(tree) - p - 1)
    depth = 0; start = 1
    for (i = 1; i <= length(inner) + 1; i++) {
        ch = substr(inner, i, 1)
        if (ch == "{") depth++
        else if (ch == "}") depth--
        else if ((ch == "," && depth == 0) || i > length(inner)) {
            if (i > start) expand(prefix head, substr(inner, start, i - start))
            start = i + 1
        }
    }
}

function edge(from, path,   to) {
    to = resolve(module_of(from), path)
    if (to != "" && to != from) print substr(from, length(src) + 1), substr(to, length(src) + 1)
}

BEGIN {
    # The crate root is lib.rs when there is one (main.rs then roots only
    # the binary's own modules, which name no root item).
    for (i = 1; i < ARGC; i++) {
        m = module_of(ARGV[i])
        if (!(m in file_of) || ARGV[i] ~ /\/lib\.rs$/) file_of[m] = ARGV[i]
    }
    for (i = 1; i < ARGC; i++) {
        f = ARGV[i]; text = ""; test_attr = 0
        while ((getline line < f) > 0) {
            sub(/\/\/.*/, "", line)
            if (test_attr && line ~ /^[ \t]*(pub[^ ]* )?mod [a-z_0-9]+;/) continue
            if (test_attr && line ~ /^[ \t]*(pub[^ ]* )?mod /) break
            if (line ~ /^[ \t]*#\[cfg\(test\)\][ \t]*$/) { test_attr = 1; continue }
            if (line !~ /^[ \t]*$/) test_attr = 0
            text = text " " line
        }
        close(f)
        # use trees
        rest = text
        while (match(rest, /(^|[^A-Za-z0-9_])use [^;]+;/)) {
            tree = substr(rest, RSTART, RLENGTH)
            rest = substr(rest, RSTART + RLENGTH)
            sub(/^[^u]*use /, "", tree); sub(/;$/, "", tree)
            gsub(/ as [A-Za-z0-9_]+/, "", tree)
            gsub(/[ \t]/, "", tree)
            npaths = 0
            expand("", tree)
            for (j = 1; j <= npaths; j++) edge(f, paths[j])
        }
        # inline paths
        rest = text
        while (match(rest, /(^|[^A-Za-z0-9_:])[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)+/)) {
            path = substr(rest, RSTART, RLENGTH)
            rest = substr(rest, RSTART + RLENGTH)
            sub(/^[^A-Za-z_]/, "", path)
            edge(f, path)
        }
    }
}
