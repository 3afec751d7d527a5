@echo off
rem Copra's one entry point on Windows: the twin of build.sh with the same verbs.
setlocal
cd /d "%~dp0"
set DOTNET_CLI_TELEMETRY_OPTOUT=1
set DOTNET_NOLOGO=1
set VERB=%1
if "%VERB%"=="" set VERB=build
shift
set ARGS=
:collect
if "%~1"=="" goto dispatch
set ARGS=%ARGS% %1
shift
goto collect
:dispatch
if "%VERB%"=="build" ( dotnet build Copra.slnx -c Release %ARGS% & goto end )
if "%VERB%"=="test" ( dotnet build Copra.slnx -c Release && dotnet test Copra.slnx -c Release --no-build --logger trx --results-directory artifacts\test-results %ARGS% & goto end )
if "%VERB%"=="run" ( dotnet run --project kernel -c Release -- run %ARGS% & goto end )
if "%VERB%"=="copra" ( dotnet run --project kernel -c Release -- %ARGS% & goto end )
if "%VERB%"=="bench" ( dotnet run --project bench -c Release -- %ARGS% & goto end )
if "%VERB%"=="fuzz" ( dotnet run --project fuzz -c Release -- %ARGS% & goto end )
if "%VERB%"=="aot" ( dotnet publish kernel -c Release -p:CopraAot=true -o artifacts\aot %ARGS% & goto end )
echo usage: build.cmd build^|test^|run^|bench^|fuzz^|aot [args...]
exit /b 2
:end
exit /b %ERRORLEVEL%
