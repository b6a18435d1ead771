/* tests/test_forward_perturb.c - helper of forward_compact.sh: perturbs one golden
 * file in place.
 *   scale FILE V ROW F   multiply row ROW of a float32 [*, V] file by F
 *   id FILE MOD IDX      replace int32 element IDX by (value + 1) mod MOD (-1 -> 0)
 *   cmp GOT REF V TOL    float32 [*, V] files: every row's max |diff| <= TOL * max |ref|
 *                        (exit 1 with row, got, expected otherwise; sizes must match)
 * Exit 0 on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float *load(const char *p, long *n)
{
	FILE *f = fopen(p, "rb");
	if (!f) { perror(p); return NULL; }
	fseek(f, 0, SEEK_END);
	*n = ftell(f) / 4;
	rewind(f);
	float *b = malloc(*n * 4 + 4);
	if (!b || fread(b, 4, *n, f) != (size_t)*n) { free(b); fclose(f); return NULL; }
	fclose(f);
	return b;
}

static int cmp(const char *got, const char *ref, long V, double tol)
{
	long n1, n2;
	float *a = load(got, &n1), *b = load(ref, &n2);
	if (!a || !b || n1 != n2) {
		if (a && b) fprintf(stderr, "FAIL: %s has %ld floats, %s has %ld\n", got, n1, ref, n2);
		free(a);
		free(b);
		return 1;
	}
	int bad = 0;
	double worst = 0;
	for (long r = 0; r < n1 / V; r++) {
		double md = 0, mr = 0;
		long at = 0;
		for (long j = 0; j < V; j++) {
			double d = fabs((double)a[r * V + j] - b[r * V + j]);
			if (!(d <= md)) { md = d; at = j; }
			if (fabs(b[r * V + j]) > mr) mr = fabs(b[r * V + j]);
		}
		if (md / mr > worst) worst = md / mr;
		if (!(md <= tol * mr)) {
			if (bad++ < 5) fprintf(stderr, "FAIL: row %ld col %ld: got %.7g expected %.7g (rel %.3g > %.3g)\n", r, at,
					       a[r * V + at], b[r * V + at], md / mr, tol);
		}
	}
	printf("cmp: %ld rows, worst row rel %.3g (tolerance %.3g)\n", n1 / V, worst, tol);
	free(a);
	free(b);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) return 2;
	if (argv[1][0] == 'c' && argc == 6) return cmp(argv[2], argv[3], atol(argv[4]), atof(argv[5]));
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
