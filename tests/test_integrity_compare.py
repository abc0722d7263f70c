"""projections.integrity.compare: the stored chain against what was published. Pure."""

from projections.integrity import compare

H = [bytes([i]) * 32 for i in range(4)]
PUBLISHED = [(i, H[i]) for i in range(3)]


def test_identical_stored_and_published_is_fine():
    assert compare("S", H[:3], None, PUBLISHED) is None
    assert compare("S", H[:4], None, PUBLISHED) is None  # stored but not yet projected: checked later


def test_edited_row_is_a_hash_difference():
    assert "stored event 1 differs" in compare("S", [H[0], H[3], H[2]], None, PUBLISHED)


def test_deleted_rows_and_missing_chain():
    assert "deleted" in compare("S", H[:2], None, PUBLISHED)
    assert "missing" in compare("S", H[:1], "stored event 1 is missing (found version 3)", PUBLISHED)
    assert "no events" in compare("S", [], None, PUBLISHED)
    assert compare("S", [], None, []) is None  # nothing published, nothing stored: an unknown label
