# vpce-collector %postun ($1: 0 erase, 1 upgrade): reload systemd; after an upgrade, restart the
# service if it was running (the new binary and unit are in place by now).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart vpce-collector.service >/dev/null 2>&1 || :
	fi
fi
exit 0
