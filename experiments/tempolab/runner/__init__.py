"""The experiment runner: suites, faults, observer, CPU sampler, run folder, progress.

Layers (each module's docstring says what it owns):

- ``suite``      suite YAML -> validated ``Suite`` dataclasses (no I/O beyond reading the file)
- ``faults``     fault objects that render apply / revert shell commands (pure)
- ``ntpwire``    NTP request/reply maths and the election-state decoding (pure)
- ``observer``   the controller-side sampling loop over one UDP socket
- ``cpu``        /proc/<pid>/stat parsing and the CPU sampling loop
- ``runfolder``  the run folder: manifest, append-only JSON lines, resume
- ``facts``      per-trial facts from observer samples and event logs (pure)
- ``sshpool``    one persistent paramiko connection per node
- ``hosts``      inventory loading (``ansible-inventory``) into ``Host`` records
- ``deploy``     ``ansible-playbook`` invocation and service control
- ``driver``     the trial driver that ties the parts together
- ``progress``   rich live display / quiet lines / end summary
"""
