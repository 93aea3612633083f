"""The output folder and every file in it, one owner per file.

========================  ===========================================================
module                    owns
========================  ===========================================================
``layout``                the folder's file names, preparing it, refusing a used one
``lock``                  the run's exclusive lock on the folder
``atomic``                the only atomic writer (whole files: artifacts, results.json,
                          reports, cached facts)
``journal``               ``journal.jsonl`` (streamed) and ``results.json`` (from it)
``journal_lines``         a journal line's format, read from its bytes
``manifest``              reading the manifest; the settings key and file hashes
``journal_index``         ``--resume``'s compact index of a journal (sorted arrays), the
                          artifacts a redo removes (partial, or written without a record)
``resume``                ``--resume``: the keep decision (unchanged stamps, else hashes;
                          every asked format too)
``stamps``                a file's (size, mtime, ctime, inode), and when it is racy
``audit``                 ``text/`` against the manifest
``stops``                 run-wide stops (full, read-only, vanished filesystem), reserve
``scratch``               the run's private temporary folder
``trace`` / ``trace_reader`` / ``trace_schema``
                          ``trace.json``: one writer, one reader, the shared names
========================  ===========================================================

Nothing here imports the pool, the scheduler or the pipeline: the output side of a
run can be read, audited and tested without starting a process.
"""
