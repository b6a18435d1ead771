/* tests/test_forward_perturb.c - helper of forward_compact.sh: perturbs one golden
 * file in place.
 *   scale FILE V ROW F   multiply row ROW of a float32 [*, V] file by F
 *   id FILE MOD IDX      replace int32 element IDX by (value + 1) mod MOD (-1 -> 0)
 * Exit 0 on success (it is a tool, not a check). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc < 5) return 2;
	FILE *f = fopen(argv[2], "r+b");
	if (!f) { perror(argv[2]); return 1; }
	if (argv[1][0] == 's' && argc == 6) {
		long V = atol(argv[3]), r = atol(argv[4]);
		double fac = atof(argv[5]);
		float *row = malloc(sizeof(float) * V);
		if (!row || fseek(f, r * V * 4, SEEK_SET) || fread(row, 4, V, f) != (size_t)V) return 1;
		for (long i = 0; i < V; i++) row[i] = (float)(row[i] * fac);
		if (fseek(f, r * V * 4, SEEK_SET) || fwrite(row, 4, V, f) != (size_t)V) return 1;
		free(row);
	} else if (argv[1][0] == 'i') {
		long mod = atol(argv[3]), i = atol(argv[4]);
		int v;
		if (fseek(f, i * 4, SEEK_SET) || fread(&v, 4, 1, f) != 1) return 1;
		v = v < 0 ? 0 : (int)((v + 1) % mod);
		if (fseek(f, i * 4, SEEK_SET) || fwrite(&v, 4, 1, f) != 1) return 1;
	} else {
		return 2;
	}
	return fclose(f) ? 1 : 0;
}
