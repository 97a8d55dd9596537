# vpce-collector %post ($1: 1 first install, 2 upgrade). Never enables or starts the service:
# the default config names a tokens file that does not exist yet.
systemd-tmpfiles --create /usr/lib/tmpfiles.d/vpce-collector.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	echo "vpce-collector: service installed but not enabled. Create the tokens file named in" \
		"/etc/vpce-collector/collector.toml, then: systemctl enable --now vpce-collector"
fi
exit 0
