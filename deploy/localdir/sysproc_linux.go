package localdir

import "syscall"

// sysProcAttr makes the kernel kill slapd if the process that started it dies
// without stopping it, so that no slapd outlives a crashed test binary.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
