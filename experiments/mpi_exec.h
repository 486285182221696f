/* Handing a distributed run from `kat` to `kat-mpi` (mpi_exec.c). */
#ifndef KAT_MPI_EXEC_H
#define KAT_MPI_EXEC_H

/* 1 when this process was started by mpirun/srun with more than one process. */
int mpi_cli_launched(void);
/* Replace this process by kat-mpi (next to this executable) with the same command line;
 * returns (2, after a message) only when that fails. */
int mpi_exec_kat_mpi(const char *cmd);

#endif
