/*
 * Calls the library through its generated header, as a C host would.
 *
 * Reads the stand-in endpoint from the environment (ECR_TEST_ENDPOINT,
 * ECR_TEST_REGION, ECR_TEST_SERIAL, ECR_TEST_WRONG_CODE; the base
 * credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and
 * prints one line per check, then "N passed, N failed".
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ecr_compose.h"

#define THREADS 4

static int passed;
static int failed;

static void check(int condition, const char *name) {
  if (condition) {
    passed++;
    printf("ok   %s\n", name);
  } else {
    failed++;
    printf("FAIL %s\n", name);
  }
}

static int contains(const char *text, const char *part) {
  return text != NULL && strstr(text, part) != NULL;
}

static const char *env_or(const char *name, const char *fallback) {
  const char *value = getenv(name);
  return value != NULL ? value : fallback;
}

static char *token_request(const char *code) {
  static const char *format =
      "{\"abiVersion\":1,\"aws\":{\"endpointUrl\":\"%s\",\"region\":\"%s\"},"
      "\"serialNumber\":\"%s\",\"tokenCode\":\"%s\",\"durationSeconds\":3600,\"cache\":{\"mode\":\"off\"}}";
  const char *endpoint = env_or("ECR_TEST_ENDPOINT", "");
  const char *region = env_or("ECR_TEST_REGION", "us-east-1");
  const char *serial = env_or("ECR_TEST_SERIAL", "");
  size_t size = strlen(format) + strlen(endpoint) + strlen(region) + strlen(serial) + strlen(code) + 1;
  char *request = malloc(size);
  snprintf(request, size, format, endpoint, region, serial, code);
  return request;
}

static void check_token_ok(void) {
  char *request = token_request("123456");
  char *response = NULL;
  EcrStatus status = ecr_token(request, &response);
  check(status == ECR_STATUS_OK, "token succeeds against the stand-in");
  check(contains(response, "\"accessKeyId\""), "token response holds an access key id");
  check(contains(response, "\"sessionToken\""), "token response holds a session token");
  ecr_string_free(response);
  free(request);
}

static void check_token_wrong_code(void) {
  char *request = token_request(env_or("ECR_TEST_WRONG_CODE", "999999"));
  char *response = NULL;
  EcrStatus status = ecr_token(request, &response);
  check(status == ECR_STATUS_AUTHENTICATION, "wrong MFA code returns AUTHENTICATION");
  check(contains(response, "\"MfaCodeRejected\""), "wrong MFA code has error id MfaCodeRejected");
  ecr_string_free(response);
  char *last = ecr_last_error();
  check(contains(last, "MfaCodeRejected"), "last error holds the failure");
  ecr_string_free(last);
  free(request);
}

static void check_misuse(void) {
  char *response = NULL;
  check(ecr_token(NULL, &response) == ECR_STATUS_INVALID_ARGUMENT, "NULL request returns INVALID_ARGUMENT");
  ecr_string_free(response);
  response = NULL;
  check(ecr_token("{}", NULL) == ECR_STATUS_INVALID_ARGUMENT, "NULL response pointer returns INVALID_ARGUMENT");
  check(ecr_token("{not json", &response) == ECR_STATUS_INVALID_REQUEST, "malformed JSON returns INVALID_REQUEST");
  ecr_string_free(response);
  response = NULL;
  const char invalid_utf8[] = {'{', '"', (char)0xC3, (char)0x28, '"', '}', 0};
  check(ecr_token(invalid_utf8, &response) == ECR_STATUS_INVALID_ARGUMENT, "invalid UTF-8 returns INVALID_ARGUMENT");
  ecr_string_free(response);
  response = NULL;
  check(ecr_token("{\"abiVersion\":99}", &response) == ECR_STATUS_ABI_VERSION, "other ABI version returns ABI_VERSION");
  ecr_string_free(response);
  response = NULL;
  check(ecr_token("{\"noSuchField\":1}", &response) == ECR_STATUS_INVALID_REQUEST, "unknown field returns INVALID_REQUEST");
  check(contains(response, "noSuchField"), "unknown field error names the field");
  ecr_string_free(response);
  response = NULL;
  check(ecr_token("{\"tokenCode\":\"12345\",\"serialNumber\":\"arn:aws:iam::123456789012:mfa/a\"}", &response) ==
            ECR_STATUS_INVALID_REQUEST,
        "five-digit code returns INVALID_REQUEST");
  check(contains(response, "InvalidTokenCode"), "five-digit code has error id InvalidTokenCode");
  ecr_string_free(response);

  size_t depth = 100000;
  char *deep = malloc(depth * 2 + 1);
  memset(deep, '[', depth);
  memset(deep + depth, ']', depth);
  deep[depth * 2] = 0;
  response = NULL;
  check(ecr_token(deep, &response) == ECR_STATUS_INVALID_REQUEST, "deeply nested JSON returns INVALID_REQUEST");
  ecr_string_free(response);
  free(deep);

  size_t huge = 4 * 1024 * 1024;
  char *big = malloc(huge + 1);
  memset(big, ' ', huge);
  big[0] = '{';
  big[huge - 1] = '}';
  big[huge] = 0;
  response = NULL;
  check(ecr_token(big, &response) == ECR_STATUS_INVALID_REQUEST, "huge request returns INVALID_REQUEST");
  ecr_string_free(response);
  free(big);

  EcrOperation *operation = NULL;
  check(ecr_operation_start("unknown", "{}", NULL, NULL, &operation) == ECR_STATUS_INVALID_REQUEST,
        "unknown operation returns INVALID_REQUEST");
  check(operation == NULL, "failed start leaves the handle NULL");
  check(ecr_operation_cancel(NULL) == ECR_STATUS_INVALID_ARGUMENT, "cancel of NULL returns INVALID_ARGUMENT");
  response = NULL;
  check(ecr_operation_poll(NULL, 0, &response) == ECR_STATUS_INVALID_ARGUMENT, "poll of NULL returns INVALID_ARGUMENT");
  ecr_string_free(response);
  ecr_operation_free(NULL);
  ecr_string_free(NULL);

  /* Debug builds of the library turn the operation into a panic on request. */
  setenv("ECR_COMPOSE_TEST_PANIC", "1", 1);
  response = NULL;
  EcrStatus panicked = ecr_token("{\"tokenCode\":\"123456\"}", &response);
  unsetenv("ECR_COMPOSE_TEST_PANIC");
  check(panicked == ECR_STATUS_PANIC, "panic in the core returns PANIC");
  check(contains(response, "InternalPanic"), "panic has error id InternalPanic");
  ecr_string_free(response);
}

static int callback_events;
static pthread_mutex_t callback_lock = PTHREAD_MUTEX_INITIALIZER;

static void count_event(void *context, const char *event_json) {
  (void)context;
  if (event_json != NULL) {
    pthread_mutex_lock(&callback_lock);
    callback_events++;
    pthread_mutex_unlock(&callback_lock);
  }
}

static void check_operation(void) {
  char *request = token_request("123456");
  EcrOperation *operation = NULL;
  EcrStatus status = ecr_operation_start("token", request, count_event, NULL, &operation);
  check(status == ECR_STATUS_OK && operation != NULL, "operation starts");
  char *response = NULL;
  int polls = 0;
  do {
    ecr_string_free(response);
    response = NULL;
    status = ecr_operation_poll(operation, 200, &response);
    polls++;
  } while (status == ECR_STATUS_PENDING && polls < 300);
  check(status == ECR_STATUS_OK, "polled operation succeeds");
  check(contains(response, "\"done\":true"), "final poll is marked done");
  ecr_string_free(response);
  check(callback_events > 0, "callback receives log events");
  ecr_operation_free(operation);
  free(request);

  operation = NULL;
  request = token_request("123456");
  ecr_operation_start("token", request, NULL, NULL, &operation);
  ecr_operation_cancel(operation);
  response = NULL;
  polls = 0;
  do {
    ecr_string_free(response);
    response = NULL;
    status = ecr_operation_poll(operation, 200, &response);
    polls++;
  } while (status == ECR_STATUS_PENDING && polls < 300);
  check(status == ECR_STATUS_CANCELLED || status == ECR_STATUS_OK, "cancelled operation ends");
  ecr_string_free(response);
  ecr_operation_free(operation);
  free(request);
}

static void *token_thread(void *argument) {
  int *ok = argument;
  char *request = token_request("123456");
  char *response = NULL;
  *ok = ecr_token(request, &response) == ECR_STATUS_OK && contains(response, "\"accessKeyId\"");
  ecr_string_free(response);
  free(request);
  return NULL;
}

static void check_threads(void) {
  pthread_t threads[THREADS];
  int results[THREADS] = {0};
  for (int i = 0; i < THREADS; i++) {
    pthread_create(&threads[i], NULL, token_thread, &results[i]);
  }
  int all = 1;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    all = all && results[i];
  }
  check(all, "concurrent token calls from several threads succeed");
}

int main(void) {
  check(ecr_abi_version() == ECR_ABI_VERSION, "ABI version matches the header");
  check_misuse();
  check_token_ok();
  check_token_wrong_code();
  check_operation();
  check_threads();
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
