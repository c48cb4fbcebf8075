"""Live progress: the lines a module appends are shown as they come, whole lines only, in order."""

import json
import threading

from ansible_collections.jitaccess.azure.plugins.plugin_utils import _progress


def line(msg, elapsed=1.25, verbosity=1):
    return json.dumps({"elapsed": elapsed, "verbosity": verbosity, "msg": msg})


def test_a_line_still_being_written_waits_for_the_next_read():
    lines, rest = _progress.progress_lines(line("a") + "\n" + '{"elapsed": 2')
    assert lines == [line("a")] and rest == '{"elapsed": 2'


def test_lines_are_formatted_with_the_task_host_and_elapsed_time_and_foreign_lines_dropped():
    assert _progress.format_line(line("listed 3 VMs"), "jitaccess.azure.nsg_jit_facts", "localhost") == (
        1,
        "jitaccess.azure.nsg_jit_facts [localhost] 1.2 s: listed 3 VMs",
    )
    assert _progress.format_line("not json", "a", "h") is None
    assert _progress.format_line(json.dumps({"msg": "no elapsed"}), "a", "h") is None


def test_the_tail_shows_each_line_once_as_it_is_appended_and_the_last_ones_at_exit(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text("")
    shown = []
    seen = threading.Event()

    def show(verbosity, text):
        shown.append((verbosity, text))
        seen.set()

    with _progress.Tail(str(path), "m", "h", show):
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(line("first", verbosity=0) + "\n" + line("second")[:10])
        assert seen.wait(30)  # shown by the thread while the module "runs"
        assert shown == [(0, "m [h] 1.2 s: first")]
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(line("second")[10:] + "\n" + line("third") + "\n")
    assert [text for _verbosity, text in shown] == ["m [h] 1.2 s: first", "m [h] 1.2 s: second", "m [h] 1.2 s: third"]
