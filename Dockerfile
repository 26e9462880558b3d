# syntax=docker/dockerfile:1
# WebDefense service image. Untested in CI: no Docker engine runs on the build machines (see docs/deployment.md).
#   CPU:  docker build -t webdefense .
#   GPU:  docker build --build-arg TORCH_BACKEND=cuda --build-arg RUNTIME_BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 -t webdefense:cuda .
ARG RUNTIME_BASE=mcr.microsoft.com/dotnet/aspnet:10.0

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG TORCH_BACKEND=cpu
WORKDIR /src
COPY . .
RUN dotnet publish src/Server/WebDefense.Server.csproj -c Release -r linux-x64 --self-contained false \
      -p:TorchBackend=${TORCH_BACKEND} -o /app

FROM ${RUNTIME_BASE} AS runtime
# The CUDA base has no .NET runtime: install it from the distribution when it is missing.
RUN if ! command -v dotnet >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends aspnetcore-runtime-10.0 curl && rm -rf /var/lib/apt/lists/*; \
    elif ! command -v curl >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*; \
    fi
RUN groupadd --system webdefense && useradd --system --gid webdefense --home /app webdefense \
    && mkdir -p /data && chown webdefense:webdefense /data
WORKDIR /app
COPY --from=build /app .
USER webdefense
ENV ASPNETCORE_URLS=http://+:8080 \
    WebDefense__DataDirectory=/data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD curl -fsS http://localhost:8080/health || exit 1
ENTRYPOINT ["dotnet", "WebDefense.Server.dll"]
