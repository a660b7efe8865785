#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes src/tokenizer/unicode_tables.c from the Unicode Character Database that Debian's
# unicode-data package installs (/usr/share/unicode): the first code point of every code
# point's lowercase form, as sorted ranges (WordPiece, src/tokenizer/wpm.c, lowercases with
# them); and what NFD and NFC need (src/tokenizer/normalize.c): canonical combining classes,
# full canonical decompositions and the primary composites (DerivedNormalizationProps.txt's
# Full_Composition_Exclusion left out). `make unicode-tables` runs this; `make unicode-check` fails when the committed file
# differs from what this writes. Python 3 standard library only.
#
# usage: tools/gen_unicode_tables.py [--ucd DIR] [--output FILE]   (default: standard output)
import argparse
import os
import re
import sys

HANGUL_S_BASE, HANGUL_L_BASE, HANGUL_S_COUNT, HANGUL_NV_T = 0xAC00, 0x1100, 11172, 588
MAX_CODE_POINT = 0x10FFFF
NFD_MAX = 4  # TOKENIZER_NFD_MAX of src/tokenizer/internal.h
LINE_WIDTH = 98  # the committed tables were wrapped at 98 columns


def read_unicode_data(path):
    """Returns ({cp: [decomposition cps]} for canonical mappings, {cp: combining class}
    for non-zero classes, {cp: simple lowercase}) from UnicodeData.txt. The large ranges
    listed by their ends (<CJK Ideograph, First> ...) have no mappings and class 0; Hangul
    syllables decompose by formula (nfd_first)."""
    decomposition, combining, lower = {}, {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            if len(fields) < 15:
                continue
            cp = int(fields[0], 16)
            if fields[3] != "0":
                combining[cp] = int(fields[3])
            mapping = fields[5]
            if mapping and not mapping.startswith("<"):  # <tag> marks a compatibility mapping
                decomposition[cp] = [int(x, 16) for x in mapping.split()]
            if fields[13]:
                lower[cp] = int(fields[13], 16)
    return decomposition, combining, lower


def read_special_lowercase(path):
    """Returns ({cp: first code point of its full lowercase form} for the unconditional
    entries of SpecialCasing.txt, the file's Unicode version)."""
    firsts, version = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#\s*SpecialCasing-(\d+\.\d+\.\d+)\.txt", line)
            if m:
                version = m.group(1)
            data = line.split("#", 1)[0].strip()
            if not data:
                continue
            fields = [x.strip() for x in data.split(";")]
            if len(fields) > 5 and fields[4]:  # a condition (Final_Sigma, a language...)
                continue
            lower = fields[1].split()
            if lower:
                firsts[int(fields[0], 16)] = int(lower[0], 16)
    return firsts, version


def read_composition_exclusions(path):
    """The code points with Full_Composition_Exclusion in DerivedNormalizationProps.txt."""
    excluded = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            data = line.split("#", 1)[0].strip()
            fields = [x.strip() for x in data.split(";")]
            if len(fields) < 2 or fields[1] != "Full_Composition_Exclusion":
                continue
            first, _, last = fields[0].partition("..")
            excluded.update(range(int(first, 16), int(last or first, 16) + 1))
    return excluded


def full_decomposition(cp, decomposition):
    """The canonical decomposition of cp applied until nothing changes (not reordered)."""
    seq, changed = [cp], True
    while changed:
        changed, out = False, []
        for c in seq:
            if c in decomposition:
                out.extend(decomposition[c])
                changed = True
            else:
                out.append(c)
        seq = out
    return seq


def combining_ranges(combining):
    """[(first, last, class)]: runs of consecutive code points with the same non-zero class."""
    ranges = []
    for cp in sorted(combining):
        if ranges and ranges[-1][1] == cp - 1 and ranges[-1][2] == combining[cp]:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, combining[cp]])
    return ranges


def case_ranges(lower):
    """[(first, last, step, delta)]: runs of mapped code points step apart (1 or 2, the
    distance to the next mapped one) that all lowercase by the same delta."""
    cps = sorted(lower)
    ranges, i = [], 0
    while i < len(cps):
        first, delta = cps[i], lower[cps[i]] - cps[i]
        last, step = first, 1
        def continues(j, want):
            return j < len(cps) and cps[j] - last == want and lower[cps[j]] - cps[j] == delta

        if i + 1 < len(cps) and cps[i + 1] - first <= 2 and continues(i + 1, cps[i + 1] - first):
            step = cps[i + 1] - first
            while continues(i + 1, step):
                i += 1
                last = cps[i]
        ranges.append((first, last, step, delta))
        i += 1
    return ranges


def hexed(v):
    return "0x%X" % v


def wrap(items):
    """Initializer rows packed into lines of at most LINE_WIDTH columns."""
    lines, line = [], "   "
    for item in items:
        if len(line) + 1 + len(item) + 1 > LINE_WIDTH and line.strip():
            lines.append(line)
            line = "   "
        line += " " + item + ","
    if line.strip():
        lines.append(line)
    return "\n".join(lines)


def render(lower, version, nfc):
    case_items = ["{%s, %s, %d, %d}" % (hexed(a), hexed(b), s, d)
                  for a, b, s, d in case_ranges(lower)]
    combining, decompositions, pool, compositions = nfc
    ccc_items = ["{%s, %s, %d}" % (hexed(a), hexed(b), c) for a, b, c in combining]
    dec_items = ["{%s, %d, %d}" % (hexed(cp), off, n) for cp, off, n in decompositions]
    pool_items = [hexed(cp) for cp in pool]
    comp_items = ["{%s, %s, %s}" % (hexed(a), hexed(b), hexed(c)) for a, b, c in compositions]
    return f"""// SPDX-License-Identifier: MIT
// Unicode tables for WordPiece normalization, NFD and NFC, generated by
// tools/gen_unicode_tables.py from the Unicode Character Database {version} (Debian's
// unicode-data); do not edit, run `make unicode-tables`. The first code point of each code
// point's lowercase form, as sorted ranges; the canonical combining classes, full canonical
// decompositions and primary composites. Data only, no logic.
#include "tokenizer/internal.h"

// {{first, last, step, delta}}: c in [first, last] with (c - first) % step == 0 lowercases to
// c + delta.
const tokenizer_case_range tokenizer_lower_ranges[] = {{
{wrap(case_items)}
}};
const size_t tokenizer_lower_count =
    sizeof tokenizer_lower_ranges / sizeof tokenizer_lower_ranges[0];

// {{first, last, class}}: the canonical combining class of c in [first, last] (0 elsewhere).
const tokenizer_ccc_range tokenizer_ccc_ranges[] = {{
{wrap(ccc_items)}
}};
const size_t tokenizer_ccc_count = sizeof tokenizer_ccc_ranges / sizeof tokenizer_ccc_ranges[0];

// {{code point, offset, length}}: its full canonical decomposition is
// tokenizer_decomposition_pool[offset, offset + length) (Hangul syllables: by formula).
const tokenizer_decomposition tokenizer_decompositions[] = {{
{wrap(dec_items)}
}};
const size_t tokenizer_decomposition_count =
    sizeof tokenizer_decompositions / sizeof tokenizer_decompositions[0];
const uint32_t tokenizer_decomposition_pool[] = {{
{wrap(pool_items)}
}};

// {{first, second, composite}}, sorted by (first, second): the primary composites (Hangul
// syllables: by formula).
const tokenizer_composition tokenizer_compositions[] = {{
{wrap(comp_items)}
}};
const size_t tokenizer_composition_count =
    sizeof tokenizer_compositions / sizeof tokenizer_compositions[0];
"""


def tables_from_ucd(ucd):
    unicode_data = os.path.join(ucd, "UnicodeData.txt")
    decomposition, combining, simple_lower = read_unicode_data(unicode_data)
    special_lower, version = read_special_lowercase(os.path.join(ucd, "SpecialCasing.txt"))
    if not version:
        sys.exit(f"{ucd}/SpecialCasing.txt: no version line")
    lower = dict(simple_lower)
    lower.update(special_lower)
    lower = {cp: lc for cp, lc in lower.items() if lc != cp}
    excluded = read_composition_exclusions(os.path.join(ucd, "DerivedNormalizationProps.txt"))
    decompositions, pool = [], []
    for cp in sorted(decomposition):
        seq = full_decomposition(cp, decomposition)
        if len(seq) > NFD_MAX:
            sys.exit(f"U+{cp:04X} decomposes into {len(seq)} code points, TOKENIZER_NFD_MAX is "
                     f"{NFD_MAX}")
        decompositions.append((cp, len(pool), len(seq)))
        pool.extend(seq)
    compositions = sorted((d[0], d[1], cp) for cp, d in decomposition.items()
                          if len(d) == 2 and cp not in excluded)
    nfc = (combining_ranges(combining), decompositions, pool, compositions)
    return lower, version, nfc


def main():
    ap = argparse.ArgumentParser(description="Writes src/tokenizer/unicode_tables.c.")
    ap.add_argument("--ucd", default="/usr/share/unicode",
                    help="the Unicode Character Database folder")
    ap.add_argument("--output", help="file to write (default: standard output)")
    args = ap.parse_args()
    for name in ("UnicodeData.txt", "SpecialCasing.txt", "DerivedNormalizationProps.txt"):
        if not os.path.exists(os.path.join(args.ucd, name)):
            sys.exit(f"{args.ucd}/{name}: missing (install Debian's unicode-data package)")
    text = render(*tables_from_ucd(args.ucd))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
