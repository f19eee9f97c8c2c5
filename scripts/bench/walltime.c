// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * walltime.c - wall time of a command from its start to its exit (bench P11 status).
 *
 *   walltime RUNS COMMAND [ARG...]
 *
 * Runs COMMAND RUNS times, one after the other, in the caller's namespaces, with
 * its standard output on /dev/null, and times each run from just before fork(2)
 * to the return of waitpid(2): the process's exec, dynamic loading, work and exit,
 * and nothing of whoever started walltime (a Python harness, nsenter). Prints one
 * JSON line: {"runs_us": [...], "cpu_us": N} (cpu_us: user + system time of all
 * the runs together, from getrusage(RUSAGE_CHILDREN)). Exits 1 when a run fails.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	long long *us;
	int runs, i;

	if (argc < 3 || (runs = atoi(argv[1])) < 1) {
		fprintf(stderr, "usage: walltime RUNS COMMAND [ARG...]\n");
		return 2;
	}
	us = calloc(runs, sizeof(*us));
	if (!us)
		return 1;
	for (i = 0; i < runs; i++) {
		long long t0 = now_us();
		int status;
		pid_t pid = fork();

		if (pid < 0) {
			perror("walltime: fork");
			return 1;
		}
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			if (null >= 0)
				dup2(null, STDOUT_FILENO);
			execvp(argv[2], argv + 2);
			perror("walltime: exec");
			_exit(127);
		}
		if (waitpid(pid, &status, 0) != pid) {
			perror("walltime: waitpid");
			return 1;
		}
		us[i] = now_us() - t0;
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "walltime: run %d of %s failed (status 0x%x)\n", i + 1, argv[2], status);
			return 1;
		}
	}
	getrusage(RUSAGE_CHILDREN, &ru);
	printf("{\"runs_us\": [");
	for (i = 0; i < runs; i++)
		printf("%s%lld", i ? ", " : "", us[i]);
	printf("], \"cpu_us\": %lld}\n",
	       (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
	return 0;
}
