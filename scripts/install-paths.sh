# Where scripts/install.sh puts things and scripts/uninstall.sh removes them from (sourced by both).
LIBDIR=/usr/lib/stemedb-agent
BINDIR=/usr/bin
UNITDIR=/usr/lib/systemd/system
SYSUSERSDIR=/usr/lib/sysusers.d
TMPFILESDIR=/usr/lib/tmpfiles.d
CONFDIR=/etc/stemedb
STATEDIR=/var/lib/stemedb-agent
RUNDIR=/run/stemedb-agent
UNIT=stemedb-agent.service
