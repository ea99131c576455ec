"""Transaction idents and To tags: unique in a process, never shared with a forked worker."""

from __future__ import annotations

import os

from kemi_tm.idents import new_ident_and_tag


def test_idents_and_tags_are_unique_and_fit_a_branch_id() -> None:
    pairs = [new_ident_and_tag() for _ in range(1000)]
    idents = {i for i, _ in pairs}
    tags = {t for _, t in pairs}
    assert len(idents) == len(tags) == 1000
    assert all("." not in i and i.isalnum() for i in idents)


def test_a_forked_child_draws_its_own_prefix() -> None:
    parent = new_ident_and_tag()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ident and tag, then leave at once
        os.close(read)
        os.write(write, " ".join(new_ident_and_tag()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        child_ident, child_tag = fh.read().split()
    os.waitpid(pid, 0)
    # same counter value possible, never the same prefix
    assert child_ident[:12] != parent[0][:12]
    assert child_tag.split("-")[0] != parent[1].split("-")[0]
